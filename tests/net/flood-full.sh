#!/bin/bash
# slow: about a minute (WireGuard's own timers, or a full-rate flood); make check-slow
# The handshake flood at the attacker's full rate: one core of this machine sending
# valid-mac1 initiations with sendmmsg from 256 source ports, as fast as it can
# (tests/net/tools/flood --rate 0). flood.sh paces its flood at 10,000/s; this one is the
# attack that starved the tunnel (issue 16): the victim must put data and
# cookie-carrying handshakes first and drop the excess cheaply.
#
#   ns V (victim, IMPL_A)  ns A (IMPL_B, established)  ns B (wireguard-go, legitimate)
#        192.0.2.1             192.0.2.2                    192.0.2.4
#                   \             |                        /
#                    +------ ns sw: br0 ------------------+
#                                 |
#                      ns M (attacker) 192.0.2.3: tools/flood, full rate
#
# Asserted, each against this run's own baseline (the host is shared, so absolute
# figures move with other load):
#   - during the flood A's pings on its established session: >= 9 of 10;
#   - A's TCP throughput during the flood >= 50% of without it (30% under ASan): two 3 s runs with the
#     flood, each followed by one without it, means compared. "Without it" keeps the
#     attacker's core busy: the same tool, at the same full rate, sends into a veth pair
#     of its own namespace (it takes one of this machine's two cores either way,
#     which any busy process would). Against the quiet tunnel (before the flood) TCP must
#     keep >= 30% (15% under ASan): starvation, what this guards against, is 0.00-0.06;
#   - a fresh handshake from A and from B (wireguard-go, when installed) during the flood
#     within one retry (<= 7 s: a cookie reply, then the retry with mac2);
#   - a full-rate flood of garbage and one of type-4 data messages with unknown indices:
#     A's pings >= 9 of 10 during each;
#   - the victim alive, its RSS grown by < 8 MiB over all the floods.
# Figures go to the log as "figure NAME=VALUE" lines (bench/run's flood row reads them).
# FLOOD_FULL_QUICK=1 (make check's short form) skips the garbage and data floods.
# FLOOD_FULL_REPORT=1 (bench/run's flood row, which also runs other victims) reports
# missed targets without failing.
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/net/adversary-lib.sh
. "$(dirname "$0")/adversary-lib.sh"
nt_init floodfull
command -v iperf3 >/dev/null || skip "iperf3 is not installed"
need_impl "$NT_IMPL_A"
need_impl "$NT_IMPL_B"
FLOOD=$(adv_tool flood)
IMPL_WGGO=${FLOOD_FULL_WGGO:-wireguard-go}
have_b=1
if why=$(impl_missing "$IMPL_WGGO"); then
	warn "no $IMPL_WGGO as the second legitimate peer: $why"
	have_b=0
fi

NSV=$(ns_name v) NSA=$(ns_name a) NSM=$(ns_name m) NSB=$(ns_name b)
IFV=$(if_name v) IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSV"
ns_create "$NSA"
ns_create "$NSM"
ns_create "$NSB"
lan_create "$NSV" "$NSA" "$NSM" "$NSB"

key_new v
key_new a
key_new b
start_wg "$NT_IMPL_A" "$NSV" "$IFV"
start_wg "$NT_IMPL_B" "$NSA" "$IFA"
wgn "$NSV" set "$IFV" private-key "$(key_file v)" listen-port 51820 \
	peer "$(key_pub a)" allowed-ips 10.0.0.2/32 \
	peer "$(key_pub b)" allowed-ips 10.0.0.4/32
a_add_peer() {
	wgn "$NSA" set "$IFA" peer "$(key_pub v)" endpoint 192.0.2.1:51820 allowed-ips 10.0.0.1/32
}
b_add_peer() {
	wgn "$NSB" set "$IFB" peer "$(key_pub v)" endpoint 192.0.2.1:51820 allowed-ips 10.0.0.1/32
}
wgn "$NSA" set "$IFA" private-key "$(key_file a)" listen-port 51821
a_add_peer
tun_up "$NSV" "$IFV" 10.0.0.1/24 fd00::1/64
tun_up "$NSA" "$IFA" 10.0.0.2/24 fd00::2/64
if [ "$have_b" = 1 ]; then
	start_wg "$IMPL_WGGO" "$NSB" "$IFB"
	wgn "$NSB" set "$IFB" private-key "$(key_file b)" listen-port 51822
	b_add_peer
	tun_up "$NSB" "$IFB" 10.0.0.4/24 fd00::4/64
fi

figure() { log "figure $1=$2"; }

# iperf_rate SECS TAG: TCP A -> V for SECS; prints Mbit/s (receiver side), 0 on failure.
iperf_rate() {
	local secs=$1 tag=$2 pid
	ip netns exec "$NSV" iperf3 -s -1 -B 10.0.0.1 >"$NT_TMP/iperf3-server-$tag.log" 2>&1 &
	pid=$!
	NT_PIDS+=("$pid")
	wait_for 5 "iperf3 server in V" sh -c "ip netns exec '$NSV' ss -ltn | grep -q '10.0.0.1:5201'"
	# -O 1: the first second (slow start) is left out, here as in the baselines
	if ! ip netns exec "$NSA" timeout $((secs + 11)) iperf3 -c 10.0.0.1 -t "$secs" -O 1 -J \
		>"$NT_TMP/iperf3-$tag.json" 2>&1; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		echo 0
		return 0
	fi
	wait "$pid" 2>/dev/null || true
	python3 -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e6))' \
		"$NT_TMP/iperf3-$tag.json"
}

# pings_received NS ADDR: of 10 pings 200 ms apart (1 s to answer each), how many came back.
pings_received() {
	ip netns exec "$1" ping -n -q -c 10 -i 0.2 -W 1 "$2" 2>&1 |
		sed -n 's/.* \([0-9]*\) received.*/\1/p' | grep . || echo 0
}

# wait_handshake_ms NS IFACE LIMIT_S T0_MS: ms from T0_MS to the first handshake of the
# interface's peer, or return 1 after LIMIT_S seconds.
wait_handshake_ms() {
	local ns=$1 ifc=$2 limit=$3 t0=$4 now
	while :; do
		now=$(adv_now_ms)
		if has_handshake "$ns" "$ifc"; then
			echo $((now - t0))
			return 0
		fi
		[ $((now - t0)) -le $((limit * 1000)) ] || return 1
		sleep 0.05
	done
}

# V's UDP receive buffer overflows (the kernel's drops before the daemon sees anything).
udp_rcvbuf_errors() {
	ip netns exec "$NSV" awk '$1 == "Udp:" && !h { for (i = 2; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1; next }
		$1 == "Udp:" && h { print $c; exit }' /proc/net/snmp
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$(daemon_worker_pid "$IFV")/status"; }

# flood_start KIND SECONDS TAG: the full-rate flood from M; flood_stop TAG ends it and
# sets FLOOD_RATE (datagrams/s).
flood_start() {
	local kind=$1 secs=$2 tag=$3
	rm -f "$NT_TMP/$tag.stop" "$NT_TMP/$tag.ready"
	ip netns exec "$NSM" "$FLOOD" --to 192.0.2.1 --port 51820 --victim-pub "$(key_pub v)" \
		--kind "$kind" --seconds "$secs" --rate 0 --burst 64 --ports 256 \
		--stop-file "$NT_TMP/$tag.stop" --ready-file "$NT_TMP/$tag.ready" \
		>"$NT_TMP/$tag.out" 2>"$NT_TMP/$tag.err" &
	FLOOD_PID=$!
	NT_PIDS+=("$FLOOD_PID")
	wait_for 5 "the $kind flood to start" test -e "$NT_TMP/$tag.ready"
}
flood_stop() {
	local tag=$1
	touch "$NT_TMP/$tag.stop"
	for _ in $(seq 100); do kill -0 "$FLOOD_PID" 2>/dev/null || break; sleep 0.1; done
	wait "$FLOOD_PID" || { cat "$NT_TMP/$tag.err" >&2; fail "the flood tool ($tag) failed"; }
	sed "s/^/flood tool ($tag): /" "$NT_TMP/$tag.out" >&2
	FLOOD_RATE=$(awk '/^flood / { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		printf "%d\n", (v["seconds"] > 0 ? v["sent"] / v["seconds"] : 0) }' "$NT_TMP/$tag.out")
}

# ---- baseline
ping_ok "$NSA" 10.0.0.1
assert_handshake "$NSA" "$IFA"
if [ "$have_b" = 1 ]; then
	ping_ok "$NSB" 10.0.0.1
	assert_handshake "$NSB" "$IFB"
fi
rate_base=$(iperf_rate 3 base)
log "baseline throughput A -> V: $rate_base Mbit/s"
awk -v r="$rate_base" 'BEGIN { exit !(r > 0) }' || fail "baseline iperf3 reported no throughput"
rss_before=$(rss_kb)

# ---- the handshake flood at full rate
rcvbuf0=$(udp_rcvbuf_errors)
flood_start init 60 init
sleep 1
log "initiation flood running for 1 s"

# Test that A's established session passes traffic through the flood.
pings=$(pings_received "$NSA" 10.0.0.1)
figure pings_flood "$pings"
# TCP with the flood, then with the attacker stopped (SIGSTOP; the under-load state ends
# 1 s later), twice over: the ratio compares runs seconds apart, so the other load on
# this shared host weighs on both sides alike. (An unfixed daemon can pass one 3 s run
# while its socket buffer is still filling, then collapse: 675, then 9.8 Mbit/s.)
# The busy attacker: the same tool at the same rate into a veth pair of M's own, to a MAC
# no one has (the far end drops each frame on arrival), stopped until its turn.
ip -n "$NSM" link add ntbusy0 type veth peer name ntbusy1
ip -n "$NSM" link set ntbusy0 up
ip -n "$NSM" link set ntbusy1 up
ip -n "$NSM" addr add 198.51.100.254/24 dev ntbusy0
ip -n "$NSM" neigh add 198.51.100.1 lladdr 02:00:5e:00:53:01 dev ntbusy0
ip netns exec "$NSM" "$FLOOD" --to 198.51.100.1 --port 51820 --victim-pub "$(key_pub v)" \
	--kind init --seconds 120 --rate 0 --burst 64 --ports 256 \
	--stop-file "$NT_TMP/busy.stop" --ready-file "$NT_TMP/busy.ready" >"$NT_TMP/busy.out" 2>"$NT_TMP/busy.err" &
BUSY_PID=$!
NT_PIDS+=("$BUSY_PID")
wait_for 5 "the busy attacker to start" test -e "$NT_TMP/busy.ready"
kill -STOP "$BUSY_PID"
tcp_on1=$(iperf_rate 3 flood1)
kill -STOP "$FLOOD_PID"; kill -CONT "$BUSY_PID"; sleep 1.2
tcp_off1=$(iperf_rate 3 busy1)
kill -STOP "$BUSY_PID"; kill -CONT "$FLOOD_PID"; sleep 0.5
tcp_on2=$(iperf_rate 3 flood2)
kill -STOP "$FLOOD_PID"; kill -CONT "$BUSY_PID"; sleep 1.2
tcp_off2=$(iperf_rate 3 busy2)
kill -STOP "$BUSY_PID"; kill -CONT "$FLOOD_PID"; sleep 0.5
touch "$NT_TMP/busy.stop"; kill -CONT "$BUSY_PID"
log "TCP with the flood: $tcp_on1, $tcp_on2 Mbit/s; with the attacker's core busy elsewhere: $tcp_off1, $tcp_off2 Mbit/s"
rate_flood=$(awk -v a="$tcp_on1" -v b="$tcp_on2" 'BEGIN { printf "%.1f", (a + b) / 2 }')
rate_paused=$(awk -v a="$tcp_off1" -v b="$tcp_off2" 'BEGIN { printf "%.1f", (a + b) / 2 }')
figure tcp_flood_mbps "$rate_flood"

# Test that fresh handshakes complete within one retry: A and B forget V (no session, no
# cookie) and ping it.
wgn "$NSA" set "$IFA" peer "$(key_pub v)" remove
a_add_peer
if [ "$have_b" = 1 ]; then
	wgn "$NSB" set "$IFB" peer "$(key_pub v)" remove
	b_add_peer
fi
t0=$(adv_now_ms)
ip netns exec "$NSA" ping -n -q -c 1 -W 10 10.0.0.1 >/dev/null 2>&1 &
NT_PIDS+=("$!")
[ "$have_b" = 1 ] && { ip netns exec "$NSB" ping -n -q -c 1 -W 10 10.0.0.1 >/dev/null 2>&1 & NT_PIDS+=("$!"); }
hs_a=$(wait_handshake_ms "$NSA" "$IFA" 9 "$t0") || hs_a=never
hs_b=skipped
[ "$have_b" = 1 ] && { hs_b=$(wait_handshake_ms "$NSB" "$IFB" 9 "$t0") || hs_b=never; }
figure handshake_a_ms "$hs_a"
figure handshake_wggo_ms "$hs_b"
kill -0 "$FLOOD_PID" 2>/dev/null || fail "the flood ended before the measurements under it were done"
flood_stop init
flood_rate=$FLOOD_RATE
figure udp_rcvbuf_errors $(($(udp_rcvbuf_errors) - rcvbuf0))
figure flood_rate "$flood_rate"
cookies=$(sed -n 's/^replies cookie=\([0-9]*\).*/\1/p' "$NT_TMP/init.out")
log "initiation flood: $flood_rate/s; V answered $cookies cookie replies"

# ---- garbage and unknown-index data at full rate
pings_garbage=skipped pings_data=skipped
if [ "${FLOOD_FULL_QUICK:-0}" != 1 ]; then
	flood_start garbage 30 garbage
	sleep 0.5
	pings_garbage=$(pings_received "$NSA" 10.0.0.1)
	flood_stop garbage
	garbage_rate=$FLOOD_RATE
	figure pings_garbage "$pings_garbage"
	figure garbage_rate "$garbage_rate"
	flood_start data 30 data
	sleep 0.5
	pings_data=$(pings_received "$NSA" 10.0.0.1)
	flood_stop data
	data_rate=$FLOOD_RATE
	figure pings_data "$pings_data"
	figure data_rate "$data_rate"
fi

# ---- after
daemon_alive "$IFV" || fail "V's daemon died"
rss_after=$(rss_kb)
figure rss_growth_kb $((rss_after - rss_before))
ratio=$(awk -v a="$rate_flood" -v b="$rate_paused" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
ratio_quiet=$(awk -v a="$rate_flood" -v b="$rate_base" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
figure tcp_base_mbps "$rate_paused"
figure tcp_ratio "$ratio"
figure tcp_ratio_quiet "$ratio_quiet"
log "summary: flood $flood_rate/s; pings $pings/10; TCP $rate_flood of $rate_paused Mbit/s with the attacker busy elsewhere (ratio $ratio), of $rate_base before the flood (ratio $ratio_quiet); handshake A ${hs_a} ms, $IMPL_WGGO ${hs_b} ms; garbage pings $pings_garbage/10, data pings $pings_data/10; RSS $rss_before -> $rss_after kB"

bad=0
[ "$pings" -ge 9 ] || { log "FAIL: $pings/10 pings during the initiation flood (< 9)"; bad=1; }
# Against the busy attacker the flood itself must cost TCP at most half; against the quiet
# tunnel the attacker's own core weighs in too (0.45 measured on a quiet 2-core host).
# Under a sanitizer build every daemon pays 2-3x per packet, flood and TCP alike, hence the
# lower bars; starvation (what this guards against) is 0.00-0.06, with the socket
# overflowing (udp_rcvbuf_errors in the hundreds of thousands).
tcp_min=0.5 quiet_min=0.3
if [ "$NT_IMPL_A" = noisetund ] && nm "$BUILD/noisetund" 2>/dev/null | grep -q __asan_; then
	tcp_min=0.3 quiet_min=0.15
fi
awk -v r="$ratio" -v m="$tcp_min" 'BEGIN { exit !(r >= m) }' ||
	{ log "FAIL: TCP during the flood is $ratio of the figure with the attacker busy elsewhere (< $tcp_min)"; bad=1; }
awk -v r="$ratio_quiet" -v m="$quiet_min" 'BEGIN { exit !(r >= m) }' ||
	{ log "FAIL: TCP during the flood is $ratio_quiet of the quiet tunnel's (< $quiet_min)"; bad=1; }
[ "$hs_a" != never ] && [ "$hs_a" -le 7000 ] || { log "FAIL: A's handshake during the flood: $hs_a ms (> 7 s)"; bad=1; }
if [ "$have_b" = 1 ]; then
	[ "$hs_b" != never ] && [ "$hs_b" -le 7000 ] || { log "FAIL: $IMPL_WGGO's handshake during the flood: $hs_b ms (> 7 s)"; bad=1; }
fi
[ "$pings_garbage" = skipped ] || [ "$pings_garbage" -ge 9 ] || { log "FAIL: $pings_garbage/10 pings during the garbage flood"; bad=1; }
[ "$pings_data" = skipped ] || [ "$pings_data" -ge 9 ] || { log "FAIL: $pings_data/10 pings during the type-4 flood"; bad=1; }
[ $((rss_after - rss_before)) -lt 8192 ] || { log "FAIL: V's RSS grew from $rss_before to $rss_after kB"; bad=1; }
[ "$cookies" -gt 0 ] || { log "FAIL: V sent no cookie reply: it never went under load"; bad=1; }
if [ "$bad" != 0 ] && [ "${FLOOD_FULL_REPORT:-0}" = 1 ]; then
	log "targets missed (FLOOD_FULL_REPORT=1: reported, not failed)"
	exit 0
fi
[ "$bad" = 0 ] || fail "the full-rate flood starved the tunnel (see FAIL lines)"
log "pass: full-rate flood $flood_rate/s: pings $pings/10, TCP ratio $ratio, handshakes A $hs_a ms / $IMPL_WGGO $hs_b ms, garbage $pings_garbage/10, data $pings_data/10"
