#!/bin/bash
# The data path on several threads (NOISETUN_DATA_THREADS, issue 19 part 4): both daemons
# seal and open their batches split over 3 threads, more than this machine's default
# (one per two CPUs: on 2 CPUs, none), so the threaded path runs wherever the tests do.
#
#   ns A  ntdt<id>a  10.0.0.1  ---- veth ----  ns B  ntdt<id>b  10.0.0.2
#
# Checks: UDP_SEGMENT flows both ways (tools/udpseg: numbered datagrams, every byte
# checked at the receiver) arrive with nothing corrupt, duplicated or out of order within
# a flow; TCP both ways; no message failed to open or was refused as a replay; and each
# daemon, stopped, reports that it did split batches, that its helpers ran chunks, and that
# they wrote received batches to the TUN (the writer stage: order is what the flows check).
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/net/adversary-lib.sh
. "$(dirname "$0")/adversary-lib.sh"
nt_init dt
command -v iperf3 >/dev/null || skip "iperf3 is not installed"
[ "$NT_IMPL_A" = noisetund ] && [ "$NT_IMPL_B" = noisetund ] || skip "NOISETUN_DATA_THREADS is noisetund's"
need_impl noisetund
TOOL=$(adv_tool udpseg)
NT=$BUILD/noisetun
COUNT=4000
SIZE=1200

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2

NOISETUN_DATA_THREADS=3 tunnel_up noisetund noisetund
ping_ok "$NSA" 10.0.0.2

for i in "$IFA" "$IFB"; do
	grep -q "transport crypto on 3 thread(s)" "$NT_TMP/$i.log" || fail "$i: no 'transport crypto on 3 thread(s)' in its log"
done

field() { # field NAME LINE
	sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"
}

failures=()
port=7100
# udp SRC_NS DST_NS DST_ADDR: two flows of COUNT datagrams in UDP_SEGMENT runs of 32
udp() {
	local sns=$1 dns=$2 dst=$3 out got s1 rpid what="$1 -> $3"
	port=$((port + 1))
	ip netns exec "$dns" "$TOOL" recv --port $port --size $SIZE --expect $((2 * COUNT)) \
		--idle 3000 --timeout 60 --gro >"$NT_TMP/recv.$port" 2>"$NT_TMP/recv.$port.err" &
	rpid=$!
	wait_for 5 "receiver on $port" grep -q listening "$NT_TMP/recv.$port.err"
	ip netns exec "$sns" "$TOOL" send --to "$dst" --port $port --size $SIZE --count $COUNT \
		--gso 32 --flow 1 --pps 40000 >"$NT_TMP/send1.$port" &
	s1=$!
	ip netns exec "$sns" "$TOOL" send --to "$dst" --port $port --size $SIZE --count $COUNT \
		--gso 32 --flow 2 --pps 40000 >"$NT_TMP/send2.$port"
	wait "$s1"
	wait "$rpid" || true
	out=$(cat "$NT_TMP/recv.$port")
	log "$what: $out"
	got=$(field datagrams "$out")
	[ -n "$got" ] || { failures+=("$what: no receiver output"); return; }
	for k in corrupt dup reordered; do
		[ "$(field $k "$out")" = 0 ] || failures+=("$what: $k=$(field $k "$out")")
	done
	[ "$got" -ge $((2 * COUNT * 80 / 100)) ] || failures+=("$what: only $got of $((2 * COUNT)) delivered")
}

# Test that UDP flows arrive whole and in order both ways.
udp "$NSA" "$NSB" 10.0.0.2
udp "$NSB" "$NSA" 10.0.0.1

# Test that TCP runs both ways (A sends, then B sends: -R).
ip netns exec "$NSB" iperf3 -s -B 10.0.0.2 >"$NT_TMP/iperf3-server.log" 2>&1 &
NT_PIDS+=("$!")
wait_for 5 "iperf3 server in B" sh -c "ip netns exec '$NSB' ss -ltn | grep -q '10.0.0.2:5201'"
for dir in "" -R; do
	ip netns exec "$NSA" iperf3 -c 10.0.0.2 -t 2 $dir -f m >"$NT_TMP/iperf3$dir.log" 2>&1 ||
		{ cat "$NT_TMP/iperf3$dir.log"; fail "iperf3 $dir through the tunnel failed"; }
	log "TCP ${dir:-A -> B}: $(awk '/receiver$/ { for (i = 1; i < NF; i++) if ($(i+1) == "Mbits/sec") print $i }' "$NT_TMP/iperf3$dir.log") Mbit/s"
done

# Test that no message failed to open or came twice (a chunk sealed or opened wrong, or
# the replay window marked out of order, would show here).
for i in "$IFA" "$IFB"; do
	"$NT" metrics "$i" >"$NT_TMP/$i.prom" || fail "noisetun metrics $i failed"
	for r in decrypt replay; do
		v=$(sed -n "s/^noisetun_drops_total{.*reason=\"$r\"} \([0-9]*\)$/\1/p" "$NT_TMP/$i.prom")
		[ "${v:-missing}" = 0 ] || failures+=("$i: drops $r = ${v:-missing}")
	done
done

# Test that both daemons split batches over their threads: stopped, each says how many.
for i in "$IFA" "$IFB"; do
	pid=$(daemon_pid "$i")
	kill -TERM "$pid"
	wait_for 10 "$i to exit" sh -c "! kill -0 $pid 2>/dev/null"
	line=$(grep -h "transport crypto: .* batches split" "$NT_TMP/$i.log" | tail -1)
	log "$i: ${line#*: }"
	runs=$(sed -n 's/.*transport crypto: \([0-9]*\) batches split.*/\1/p' <<<"$line")
	helped=$(sed -n 's/.*threads, \([0-9]*\) of their.*/\1/p' <<<"$line")
	[ "${runs:-0}" -gt 0 ] || failures+=("$i: no batch was split over the threads")
	written=$(sed -n 's/.*; \([0-9]*\) TUN write batches by the helpers.*/\1/p' <<<"$line")
	[ "${helped:-0}" -gt 0 ] || failures+=("$i: the helper threads ran no chunk")
	[ "${written:-0}" -gt 0 ] || failures+=("$i: the helper threads wrote no received batch to the TUN")
done

[ ${#failures[@]} = 0 ] || fail "${failures[*]}"
log "pass"
