#!/bin/bash
# bench/udpseg.sh: UDP delivered through a pair of noisetund, the plain way (one datagram
# per send, as iperf3) and the QUIC way (UDP_SEGMENT sends; and a receiver with UDP_GRO),
# next to iperf3's own UDP and TCP figures, in two namespaces joined by a veth (set up
# and torn down with tests/net/lib.sh). A benchmark: it prints, asserts nothing.
#
#   BUILD=build/release [REPS=3] [SECS=5] [SIZE=1392] bash bench/udpseg.sh
#
# One line per run, then the median of each figure over REPS:
#   udp-plain  tests/net/tools/udpseg, --gso 0: delivered kpps and Gbit/s (payload bytes)
#   udp-gso    the same with --gso 44 (44 x 1392 = 61,248 bytes a send)
#   udp-gso-gro  the same, receiver with UDP_GRO
#   iperf3-udp iperf3 -u -b 0 -l SIZE: delivered kpps (as bench/run's UDP rows)
#   iperf3-tcp iperf3, 1 stream: Gbit/s
# The MTU is bench/run's (1420); SIZE 1392 is its largest UDP payload that fits.
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/../tests/net/lib.sh"
# shellcheck source=tests/net/adversary-lib.sh
. "$(dirname "$0")/../tests/net/adversary-lib.sh"
nt_init us
TOOL=$(adv_tool udpseg)
REPS=${REPS:-3} SECS=${SECS:-5} SIZE=${SIZE:-1392}
command -v iperf3 >/dev/null || skip "iperf3 is not installed"

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2
key_new a
key_new b
start_wg noisetund "$NSA" "$IFA"
start_wg noisetund "$NSB" "$IFB"
wgn "$NSA" set "$IFA" private-key "$(key_file a)" listen-port 51820 \
	peer "$(key_pub b)" endpoint 192.0.2.2:51821 allowed-ips 10.0.0.2/32
wgn "$NSB" set "$IFB" private-key "$(key_file b)" listen-port 51821 \
	peer "$(key_pub a)" endpoint 192.0.2.1:51820 allowed-ips 10.0.0.1/32
tun_up "$NSA" "$IFA" 10.0.0.1/24 fd00::1/64
tun_up "$NSB" "$IFB" 10.0.0.2/24 fd00::2/64
ip -n "$NSA" link set "$IFA" mtu 1420
ip -n "$NSB" link set "$IFB" mtu 1420
ping_ok "$NSA" 10.0.0.2
log "offloads: $(grep -h 'TUN offloads' "$NT_TMP/$IFA.log" | head -1 | sed 's/.*TUN offloads: //')"

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
declare -A R=()
port=7100

udpseg() { # udpseg NAME GSO [--gro]
	local name=$1 gso=$2 gro=${3:-} out
	port=$((port + 1))
	ip netns exec "$NSB" "$TOOL" recv --port $port --size "$SIZE" --idle 1000 --timeout $((SECS + 15)) \
		--no-verify $gro >"$NT_TMP/r.$port" 2>"$NT_TMP/r.$port.err" &
	local rpid=$!
	wait_for 5 "receiver" grep -q listening "$NT_TMP/r.$port.err"
	ip netns exec "$NSA" "$TOOL" send --to 10.0.0.2 --port $port --size "$SIZE" --seconds "$SECS" \
		--gso "$gso" --no-verify >"$NT_TMP/s.$port"
	wait "$rpid"
	out=$(cat "$NT_TMP/r.$port")
	log "$name: sent $(field kpps "$(cat "$NT_TMP/s.$port")") kpps; $out"
	R[$name.kpps]+="$(field kpps "$out") "
	R[$name.gbps]+="$(field gbps "$out") "
}

iperf_udp() {
	local out
	ip netns exec "$NSB" timeout $((SECS + 30)) iperf3 -s -1 -B 10.0.0.2 -J >"$NT_TMP/iu.json" 2>&1 &
	local spid=$!
	wait_for 5 "iperf3 server" sh -c "ip netns exec '$NSB' ss -ltn | grep -q '10.0.0.2:5201'"
	ip netns exec "$NSA" iperf3 -c 10.0.0.2 -u -b 0 -l "$SIZE" -t "$SECS" >/dev/null 2>&1 || true
	wait "$spid" || true
	out=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["end"]["sum"]; n=d["packets"]-d["lost_packets"]; print("%.1f %.3f" % (n/d["seconds"]/1e3, n*int(sys.argv[2])*8/d["seconds"]/1e9))' "$NT_TMP/iu.json" "$SIZE" 2>/dev/null || echo "0 0")
	log "iperf3-udp: delivered kpps, Gbit/s: $out"
	R[iperf3-udp.kpps]+="${out% *} "
	R[iperf3-udp.gbps]+="${out#* } "
}

iperf_tcp() {
	local out
	ip netns exec "$NSB" timeout $((SECS + 30)) iperf3 -s -1 -B 10.0.0.2 -J >"$NT_TMP/it.json" 2>&1 &
	local spid=$!
	wait_for 5 "iperf3 server" sh -c "ip netns exec '$NSB' ss -ltn | grep -q '10.0.0.2:5201'"
	ip netns exec "$NSA" iperf3 -c 10.0.0.2 -t "$SECS" -O 1 >/dev/null 2>&1 || true
	wait "$spid" || true
	out=$(python3 -c 'import json,sys; print("%.3f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e9))' "$NT_TMP/it.json" 2>/dev/null || echo 0)
	log "iperf3-tcp: Gbit/s $out"
	R[iperf3-tcp.gbps]+="$out "
}

for rep in $(seq "$REPS"); do
	log "repetition $rep/$REPS (load: $(cut -d' ' -f1-3 /proc/loadavg))"
	udpseg udp-plain 0
	udpseg udp-gso 44
	udpseg udp-gso-gro 44 --gro
	iperf_udp
	iperf_tcp
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }
echo "median of $REPS (payload $SIZE B, $SECS s each; $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg))"
for k in udp-plain udp-gso udp-gso-gro iperf3-udp; do
	printf '%-12s %8s kpps %8s Gbit/s   [%s]\n' "$k" "$(median <<<"${R[$k.kpps]}")" "$(median <<<"${R[$k.gbps]}")" "${R[$k.kpps]% }"
done
printf '%-12s %22s Gbit/s   [%s]\n' iperf3-tcp "$(median <<<"${R[iperf3-tcp.gbps]}")" "${R[iperf3-tcp.gbps]% }"
