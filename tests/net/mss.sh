#!/bin/bash
# TCP MSS clamping (issue 18 part 3): a host behind a 1500-byte LAN advertises an MSS
# the tunnel cannot carry; noisetund lowers it in SYNs both ways, to the tunnel MTU.
#
#   ns C (LAN host)         ns A (noisetun up, config mode)         ns B (noisetund, wg set)
#   lan0 10.1.0.2/24  ----  lan0 10.1.0.1/24 (forwarding)           ntms<id>b MTU 1500
#        fd01::2/64   1500  ntms<id>a MTU 1280 10.0.0.1 fd00::1 ==== 10.0.0.2 fd00::2
#                           eth0 192.0.2.1 ------------------------ eth0 192.0.2.2
#
# C connects to B (v4 and v6). A capture (AF_PACKET, python3) on A's and B's TUN shows
# each SYN as it enters and leaves the tunnel:
#   - C's SYN: MSS 1460/1440 leaving A's stack, <= 1240/1220 (1280 - 40/60) at B — A's
#     send path clamped it;
#   - B's SYN-ACK: MSS 1460/1440 leaving B (B's MTU is 1500), <= 1240/1220 where A
#     writes it to its TUN — A's receive path clamped it; the checksum of every SYN
#     written to a TUN is verified by a full recompute;
#   - with "# noisetun-mss-clamp = off" in A's file: 1460/1440 pass unchanged; a reload
#     (SIGHUP, daemon split or not) switches it off and on again;
#   - `noisetun strip` drops that line.
set -eu
. "$(dirname "$0")/lib.sh"
nt_init mss
need_impl noisetund
NT=$BUILD/noisetun
NTD=$BUILD/noisetund
[ -x "$NT" ] || skip "noisetun not built"

NSA=$(ns_name a) NSB=$(ns_name b) NSC=$(ns_name c)
IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
ns_create "$NSC"
link_pair "$NSA" 1 "$NSB" 2
ip link add "ntl${NT_ID}a" netns "$NSA" type veth peer name "ntl${NT_ID}c" netns "$NSC"
ip -n "$NSA" link set "ntl${NT_ID}a" name lan0
ip -n "$NSC" link set "ntl${NT_ID}c" name lan0
ip -n "$NSA" addr add 10.1.0.1/24 dev lan0
ip -n "$NSA" addr add fd01::1/64 dev lan0 nodad
ip -n "$NSA" link set lan0 up
ip -n "$NSC" addr add 10.1.0.2/24 dev lan0
ip -n "$NSC" addr add fd01::2/64 dev lan0 nodad
ip -n "$NSC" link set lan0 up
ip -n "$NSC" route add default via 10.1.0.1
ip -n "$NSC" -6 route add default via fd01::1
ip netns exec "$NSA" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

key_new a
key_new b
start_wg noisetund "$NSB" "$IFB"
wgn "$NSB" set "$IFB" private-key "$(key_file b)" listen-port 51821 \
	peer "$(key_pub a)" endpoint 192.0.2.1:51820 allowed-ips 10.0.0.1/32,fd00::1/128,10.1.0.0/24,fd01::/64
tun_up "$NSB" "$IFB" 10.0.0.2/24 fd00::2/64
ip -n "$NSB" link set "$IFB" mtu 1500
ip -n "$NSB" route add 10.1.0.0/24 dev "$IFB"
ip -n "$NSB" -6 route add fd01::/64 dev "$IFB"

NT_IFACES+=("$IFA")
mkdir -m 700 "$NT_TMP/conf"
CONF=$NT_TMP/conf/$IFA.conf
DPID=""

# write_conf [EXTRA INTERFACE LINE]: A's file.
write_conf() {
	{
		echo "[Interface]"
		echo "PrivateKey = $(cat "$(key_file a)")"
		echo "ListenPort = 51820"
		echo "Address = 10.0.0.1/24, fd00::1/64"
		echo "MTU = 1280"
		[ $# = 0 ] || echo "$1"
		echo
		echo "[Peer]"
		echo "PublicKey = $(key_pub b)"
		echo "Endpoint = 192.0.2.2:51821"
		echo "AllowedIPs = 10.0.0.2/32, fd00::2/128"
	} >"$CONF"
	chmod 600 "$CONF"
}

# up [EXTRA INTERFACE LINE]: write A's file, `noisetun up` in A (environment: UP_ENV).
UP_ENV=()
up() {
	write_conf "$@"
	timeout 15 env "${UP_ENV[@]}" ip netns exec "$NSA" "$NT" up "$CONF" >>"$NT_TMP/$IFA.log" 2>&1 </dev/null ||
		fail "noisetun up failed: $(tail -5 "$NT_TMP/$IFA.log")"
	DPID=$(_find_daemon "$IFA" "$NTD") || fail "no daemon for $IFA"
	NT_PIDS+=("$DPID")
	echo "$DPID" >"$NT_TMP/$IFA.pid"
	[ "$(ip -n "$NSA" -o link show "$IFA" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')" = 1280 ] || fail "A's MTU is not 1280"
}

down() {
	timeout 15 ip netns exec "$NSA" "$NT" down "$CONF" >>"$NT_TMP/$IFA.log" 2>&1 </dev/null || fail "noisetun down failed"
	wait_for 5 "A's daemon to exit" sh -c "! kill -0 $DPID 2>/dev/null || grep -q '^State:.*Z' /proc/$DPID/status"
}

# The SYN watcher: every TCP segment with SYN on IFACE, one line each:
#   in|out 4|6 SYN|SYNACK mss=N csum=ok|bad|partial
# "in" is what the daemon wrote to the TUN (checksum verified by a full recompute), "out"
# what the kernel handed the daemon (its checksum may be left to offload: not judged).
cat >"$NT_TMP/synwatch.py" <<'PY'
import socket, struct, sys
iface, out, ready = sys.argv[1:4]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((iface, 0))
open(ready, "w").close()
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return t
with open(out, "w", buffering=1) as f:
    while True:
        p, addr = s.recvfrom(70000)
        v = p[0] >> 4
        if v == 4 and len(p) >= 20 and p[9] == 6:
            l3 = (p[0] & 15) * 4; end = struct.unpack("!H", p[2:4])[0]
            pseudo = p[12:20] + struct.pack("!HH", 6, end - l3)
        elif v == 6 and len(p) >= 40 and p[6] == 6:
            l3 = 40; end = 40 + struct.unpack("!H", p[4:6])[0]
            pseudo = p[8:40] + struct.pack("!IxxxB", end - l3, 6)
        else:
            continue
        t = p[l3:end]
        if len(t) < 20 or not t[13] & 2:
            continue
        mss, i, thl = -1, 20, (t[12] >> 4) * 4
        while i < thl and t[i] != 0:
            if t[i] == 1: i += 1; continue
            if i + 1 >= thl or t[i + 1] < 2: break
            if t[i] == 2 and t[i + 1] == 4: mss = struct.unpack("!H", t[i + 2:i + 4])[0]
            i += t[i + 1]
        d = "out" if addr[2] == socket.PACKET_OUTGOING else "in"
        ok = "partial" if d == "out" else ("ok" if csum(pseudo + t) == 0xffff else "bad")
        f.write("%s %d %s mss=%d csum=%s\n" % (d, v, "SYNACK" if t[13] & 0x10 else "SYN", mss, ok))
PY

# The server in B: accept and close, forever (both families).
cat >"$NT_TMP/server.py" <<'PY'
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 8080)); s.listen(16)
while True:
    c, _ = s.accept(); c.close()
PY
ip netns exec "$NSB" python3 "$NT_TMP/server.py" >"$NT_TMP/server.log" 2>&1 &
NT_PIDS+=("$!")
wait_for 5 "the server in B" sh -c "ip netns exec '$NSB' ss -ltn | grep -q ':8080'"

# connect HOST: from C; prints the MSS C's socket ended up with (TCP_MAXSEG).
connect() {
	ip netns exec "$NSC" python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], 8080), timeout=5)
print(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))' "$1"
}

# run TAG: capture on both TUNs while C connects to B over v4 and v6.
run() {
	local tag=$1 pids=() side
	for side in a b; do
		local ns ifc
		[ $side = a ] && ns=$NSA ifc=$IFA || { ns=$NSB; ifc=$IFB; }
		rm -f "$NT_TMP/ready-$tag-$side"
		ip netns exec "$ns" python3 "$NT_TMP/synwatch.py" "$ifc" "$NT_TMP/syn-$tag-$side" \
			"$NT_TMP/ready-$tag-$side" 2>>"$NT_TMP/synwatch.log" &
		pids+=("$!")
		NT_PIDS+=("$!")
	done
	wait_for 5 "the SYN watchers" sh -c "test -e '$NT_TMP/ready-$tag-a' && test -e '$NT_TMP/ready-$tag-b'"
	ping_ok "$NSC" 10.0.0.2
	MAXSEG4=$(connect 10.0.0.2) || fail "$tag: C cannot connect to B over v4"
	MAXSEG6=$(connect fd00::2) || fail "$tag: C cannot connect to B over v6"
	sleep 0.3
	kill "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
	for side in a b; do sed "s/^/$tag $side: /" "$NT_TMP/syn-$tag-$side"; done
	log "$tag: C's socket MSS (TCP_MAXSEG) v4 $MAXSEG4, v6 $MAXSEG6"
}

# seen TAG SIDE DIR V KIND: the MSS of the first such SYN, or fail
seen() {
	local m
	m=$(awk -v d="$3" -v v="$4" -v k="$5" '$1 == d && $2 == v && $3 == k { sub("mss=", "", $4); print $4; exit }' \
		"$NT_TMP/syn-$1-$2")
	[ -n "$m" ] || fail "$1: no $5 (IPv$4, $3) captured on $2's TUN"
	echo "$m"
}

# Test that with clamping on (the default), both directions are clamped and checksums hold.
up
run on
[ "$(seen on a out 4 SYN)" = 1460 ] || fail "C's v4 SYN left A's stack with MSS $(seen on a out 4 SYN), not 1460"
[ "$(seen on a out 6 SYN)" = 1440 ] || fail "C's v6 SYN left A's stack with MSS $(seen on a out 6 SYN), not 1440"
m=$(seen on b in 4 SYN); [ "$m" -le 1240 ] || fail "C's v4 SYN reached B with MSS $m > 1240"
m=$(seen on b in 6 SYN); [ "$m" -le 1220 ] || fail "C's v6 SYN reached B with MSS $m > 1220"
[ "$(seen on b out 4 SYNACK)" = 1460 ] || fail "B's v4 SYN-ACK left with MSS $(seen on b out 4 SYNACK), not 1460"
[ "$(seen on b out 6 SYNACK)" = 1440 ] || fail "B's v6 SYN-ACK left with MSS $(seen on b out 6 SYNACK), not 1440"
m=$(seen on a in 4 SYNACK); [ "$m" -le 1240 ] || fail "B's v4 SYN-ACK reached A's TUN with MSS $m > 1240"
m=$(seen on a in 6 SYNACK); [ "$m" -le 1220 ] || fail "B's v6 SYN-ACK reached A's TUN with MSS $m > 1220"
! grep -q "csum=bad" "$NT_TMP/syn-on-a" "$NT_TMP/syn-on-b" || fail "a SYN with a wrong TCP checksum reached a TUN"
[ "$MAXSEG4" -le 1240 ] && [ "$MAXSEG6" -le 1220 ] || fail "C's sockets use MSS $MAXSEG4 / $MAXSEG6"
log "clamping on: v4 SYN 1460 -> $(seen on b in 4 SYN), SYN-ACK 1460 -> $(seen on a in 4 SYNACK);" \
	"v6 SYN 1440 -> $(seen on b in 6 SYN), SYN-ACK 1440 -> $(seen on a in 6 SYNACK)"
down

# Test that "# noisetun-mss-clamp = off" lets the original MSS through, both ways.
up "# noisetun-mss-clamp = off"
run off
[ "$(seen off b in 4 SYN)" = 1460 ] || fail "clamping off: C's v4 SYN reached B with MSS $(seen off b in 4 SYN)"
[ "$(seen off b in 6 SYN)" = 1440 ] || fail "clamping off: C's v6 SYN reached B with MSS $(seen off b in 6 SYN)"
[ "$(seen off a in 4 SYNACK)" = 1460 ] || fail "clamping off: B's v4 SYN-ACK reached A with MSS $(seen off a in 4 SYNACK)"
[ "$(seen off a in 6 SYNACK)" = 1440 ] || fail "clamping off: B's v6 SYN-ACK reached A with MSS $(seen off a in 6 SYNACK)"
log "clamping off: 1460 / 1440 pass unchanged"

# Test that a reload (SIGHUP) turns clamping on and off, in a split daemon (the monitor
# sends it to the worker in the reload's set: noisetun_mss_clamp) and an unsplit one.
reload_test() { # TAG
	local t=$1
	down
	up
	write_conf "# noisetun-mss-clamp = off"
	kill -HUP "$DPID"
	sleep 1
	run "$t-off"
	[ "$(seen "$t-off" b in 4 SYN)" = 1460 ] || fail "$t: reload to off: C's v4 SYN reached B with MSS $(seen "$t-off" b in 4 SYN)"
	[ "$(seen "$t-off" a in 6 SYNACK)" = 1440 ] || fail "$t: reload to off: B's v6 SYN-ACK reached A with MSS $(seen "$t-off" a in 6 SYNACK)"
	write_conf
	kill -HUP "$DPID"
	sleep 1
	run "$t-on"
	[ "$(seen "$t-on" b in 4 SYN)" = 1240 ] || fail "$t: reload to on: C's v4 SYN reached B with MSS $(seen "$t-on" b in 4 SYN)"
	[ "$(seen "$t-on" a in 6 SYNACK)" = 1220 ] || fail "$t: reload to on: B's v6 SYN-ACK reached A with MSS $(seen "$t-on" a in 6 SYNACK)"
	log "reload ($t): off and on again, applied"
}
reload_test split
UP_ENV=(NOISETUN_USER=root)
reload_test unsplit
write_conf "# noisetun-mss-clamp = off"

# Test that strip drops the line and keeps the rest.
"$NT" strip "$CONF" >"$NT_TMP/stripped" || fail "noisetun strip failed"
! grep -qi "noisetun-mss-clamp" "$NT_TMP/stripped" || fail "noisetun strip kept the noisetun-mss-clamp line"
grep -q "^PublicKey" "$NT_TMP/stripped" || fail "noisetun strip lost the peer"
down
log "PASS"
